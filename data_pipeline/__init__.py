"""Video data for VGAN: raw video -> stabilized clips -> shards -> tf.data batches, and the
procedural scenes that stand in when there is none. Never imports Flax; batches leave as dicts of
numpy arrays."""
