"""Video data for VGAN: procedural scenes, and (later) raw video -> stabilized clips -> shards ->
tf.data batches. Never imports Flax; batches leave as dicts of numpy arrays."""
