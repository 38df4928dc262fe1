//! WIDER FACE, ImageNet, Visual Wake Words, SCUT-HEAD and Fashion-MNIST loaders. Not implemented
//! yet: an empty placeholder in the workspace until its issue ("Data") is done.
