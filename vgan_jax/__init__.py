"""vgan_jax: the video GAN of Vondrick, Pirsiavash and Torralba (2016) in JAX and Flax.

The library holds pure functions and Flax modules only: no flags, no file formats, no TensorFlow.
"""
