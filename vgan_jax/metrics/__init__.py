"""Video metrics: I3D features (`i3d.py`), FVD and KVD (`fvd.py`)."""
