"""Entry points (absl flags): parse flags, build the config, call the library."""
