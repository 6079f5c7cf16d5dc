//! plugins.yml texts for tests. They live in `tests/fixtures/` so that the
//! unit tests here and the integration tests share one copy of each.

use std::path::Path;

use super::{CatalogError, CatalogFile, Problem};

/// WASImancer's own sample entry, unchanged: what we must read as it does.
pub const WASIMANCER: &str = include_str!("../../tests/fixtures/wasimancer.yml");

/// `text` read as `plugins.yml`.
pub fn parse(text: &str) -> Result<CatalogFile, CatalogError> {
    CatalogFile::parse(Path::new("plugins.yml"), text)
}

/// The problems of an invalid `text`; panics if it is valid.
pub fn problems(text: &str) -> Vec<Problem> {
    match parse(text) {
        Err(CatalogError::Invalid { problems }) => problems,
        other => panic!("expected problems, got {other:?}"),
    }
}
