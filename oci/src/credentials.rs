//! Registry credentials from Docker's config file and credential helpers
//! (being written).
