//! int8 export to C for Cortex-M4. Not implemented yet: an empty placeholder in the workspace
//! until its issue ("Export") is done.
