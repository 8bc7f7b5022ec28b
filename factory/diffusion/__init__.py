"""The diffusion models behind the `diffusion` texturer and the `inpaint` background, apart from Ray and rendering.

- `settings`: DiffusionConfig, the `render: {diffusion: …}` section (models, samplers, prompts, sizes);
- `weights`: find a model in a folder or the Hugging Face cache, check its kind, fetch it (`factory fetch-models`);
- `jobs`: PortraitJob, InpaintJob and DiffusionOutputs, what render workers and diffusion actors exchange;
- `pipelines`: DiffusionModels, the loaded diffusers pipelines that turn batches of jobs into images.

The Ray stage that runs them on GPU actors is factory/run/diffusion.py; the texturer that bakes portraits into the
UV atlas is factory/face/texture/diffusion.py; backgrounds are factory/run/inpaint.py.
"""
