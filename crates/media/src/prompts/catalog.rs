//! The prompt catalog (`prompts/catalog.tsv`): what each prompt says.
//!
//! One prompt per line as `id<TAB>text`; blank lines and lines starting with
//! `#` are skipped. `scripts/gen-prompts.sh` reads the same format, so the
//! rules here and there must agree.

use super::PromptError;

/// One catalog line: a prompt id and the words it speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogEntry {
    /// Kebab-case id with a feature prefix (`vm-`, `ivr-`, `queue-`, ...);
    /// also the file name without `.wav`.
    pub id: String,
    /// The spoken text.
    pub text: String,
}

/// True for a kebab-case id: lowercase ASCII letters and digits in words
/// joined by single hyphens (`vm-enter-password`, `digit-7`).
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.split('-').all(|word| {
            !word.is_empty()
                && word
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

/// Parses a catalog, rejecting malformed lines, invalid ids and duplicates.
pub fn parse_catalog(text: &str) -> Result<Vec<CatalogEntry>, PromptError> {
    let mut entries: Vec<CatalogEntry> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        let err = |reason: String| PromptError::Catalog {
            line: line_no,
            reason,
        };
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((id, spoken)) = line.split_once('\t') else {
            return Err(err("expected id<TAB>text".into()));
        };
        if spoken.trim().is_empty() {
            return Err(err(format!("prompt {id:?} has no text")));
        }
        if !is_valid_id(id) {
            return Err(err(format!("id {id:?} is not kebab-case")));
        }
        if entries.iter().any(|e| e.id == id) {
            return Err(err(format!("duplicate id {id:?}")));
        }
        entries.push(CatalogEntry {
            id: id.to_owned(),
            text: spoken.to_owned(),
        });
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kebab_case_ids() {
        for ok in ["vm-enter-password", "digit-7", "num-hundred", "a"] {
            assert!(is_valid_id(ok), "{ok}");
        }
        for bad in [
            "", "-a", "a-", "a--b", "Vm-x", "vm_x", "vm x", "vm-é", "vm.x",
        ] {
            assert!(!is_valid_id(bad), "{bad}");
        }
    }

    #[test]
    fn parses_and_skips_comments() {
        let c = parse_catalog("# header\n\nvm-a\tHello.\ngen-b\tBye, now.\n").unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[1].id, "gen-b");
        assert_eq!(c[1].text, "Bye, now.");
    }

    #[test]
    fn rejects_bad_lines_with_line_numbers() {
        let line_of = |text: &str| match parse_catalog(text) {
            Err(PromptError::Catalog { line, .. }) => line,
            other => panic!("expected a catalog error, got {other:?}"),
        };
        assert_eq!(line_of("vm-a\tHi\nno tab here\n"), 2);
        assert_eq!(line_of("vm-a\tHi\nvm-a\tAgain\n"), 2);
        assert_eq!(line_of("VM_A\tHi\n"), 1);
        assert_eq!(line_of("vm-a\t \n"), 1);
    }
}
