//! Training and evaluation loops. Not implemented yet: an empty placeholder in the workspace
//! until its issue ("Training and evaluation") is done.
