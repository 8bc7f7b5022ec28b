"""Running the factory: the generate config, the per-identity renderer, Ray workers and the driver."""
