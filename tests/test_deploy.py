"""What can be checked of the deployment files without Docker or a cloud (see deploy/README.md)."""

import re
import shlex
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parents[1]
MANIFESTS = sorted((ROOT / "deploy").glob("*.yaml"))


def pinned_ray_version() -> str:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (ray,) = [d for d in dependencies if d.startswith("ray[")]
    return ray.split("==")[1]


def test_cluster_yaml_passes_rays_own_schema():
    from ray.autoscaler._private.commands import prepare_config
    from ray.autoscaler._private.util import validate_config

    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    validate_config(prepare_config(config))
    assert config["head_node_type"] in config["available_node_types"]
    assert config["available_node_types"]["head.cpu"]["resources"] == {"CPU": 0}


def test_cluster_yaml_commands_are_valid_shell():
    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    commands = config["setup_commands"] + config["head_start_ray_commands"] + config["worker_start_ray_commands"]
    for command in commands:
        subprocess.run(["bash", "-n", "-c", command], check=True)


def test_no_secret_is_written_into_a_deployment_file():
    for path in [ROOT / "cluster.yaml", *MANIFESTS]:
        text = path.read_text()
        assert not re.search(r"AKIA[0-9A-Z]{16}", text), path
        assert not re.search(r"(?i)secret_access_key\s*[:=]\s*\S", text), path


def test_dockerfile_base_matches_the_pinned_ray_release():
    dockerfile = (ROOT / "Dockerfile").read_text()
    (base,) = re.findall(r"^FROM (\S+)", dockerfile, flags=re.M)
    assert base.startswith(f"rayproject/ray:{pinned_ray_version()}-py311-gpu")
    for source in re.findall(r"^COPY (?:--\S+ )*(\S+) ", dockerfile, flags=re.M):
        assert (ROOT / source).exists(), f"Dockerfile copies {source}, which is not in the repository"


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_kuberay_manifests_are_well_formed(path):
    document = yaml.safe_load(path.read_text())
    assert document["apiVersion"] == "ray.io/v1" and document["kind"] in {"RayCluster", "RayJob"}
    cluster = document["spec"] if document["kind"] == "RayCluster" else document["spec"]["rayClusterSpec"]
    assert cluster["rayVersion"] == pinned_ray_version()
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    images = {c["image"] for g in groups for c in g["template"]["spec"]["containers"]}
    assert len(images) == 1, "one image for head and workers"
    for group in cluster["workerGroupSpecs"]:
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        if group["groupName"] == "gpu":
            for container in group["template"]["spec"]["containers"]:
                assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"


def test_deployment_commands_parse_with_the_real_cli():
    """Every `factory …`/`trainer …` command in the deployment files (and the Dockerfile) is accepted by the real
    argument parser."""
    import typer.main

    from factory.cli import app as factory_app
    from trainer.cli import app as trainer_app

    apps = {"factory": factory_app, "trainer": trainer_app}
    commands = [yaml.safe_load(p.read_text())["spec"].get("entrypoint") for p in MANIFESTS]
    commands += re.findall(r"^#\s+((?:factory|trainer) .+)$", (ROOT / "cluster.yaml").read_text(), flags=re.M)
    commands += re.findall(r"^RUN ((?:factory|trainer) [^&]+?) &&", (ROOT / "Dockerfile").read_text(), flags=re.M)
    checked = 0
    for command in filter(None, commands):
        program, *args = shlex.split(command)
        group = typer.main.get_command(apps[program])
        name, sub, rest = group.resolve_command(group.make_context(program, list(args), resilient_parsing=True), list(args))
        assert sub is not None, f"{command!r}: no such command"
        sub.make_context(name, rest)  # raises on an unknown option or a bad value
        checked += 1
    assert checked == 6  # 3 RayJobs + 2 example commands in cluster.yaml + the Dockerfile's warm-up render
