//! The build context and `.dockerignore` (being written).
