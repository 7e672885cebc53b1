//! The confirmation prompt: the operator types the names of what will be changed.

use std::io::{BufRead, IsTerminal, Write};

use crate::error::{Error, Result};

/// With no terminal, nobody can answer the prompt: refuse before any AWS call.
pub(crate) fn require_terminal_or_yes(yes: bool) -> Result<()> {
    if !yes && !std::io::stdin().is_terminal() {
        return Err(Error::invalid(
            "--yes",
            "there is no terminal to confirm on (stdin is not a TTY); review the plan, then pass --yes",
        ));
    }
    Ok(())
}

/// Whether the answer names exactly these, in this order, separated by any whitespace.
fn typed_all(answer: &str, names: &[String]) -> bool {
    answer
        .split_whitespace()
        .eq(names.iter().map(String::as_str))
}

/// Asks the operator to type the names (`noun`: "table name", "environment name"),
/// space-separated; anything else refuses.
pub(crate) fn prompt(summary: &str, noun: &str, tables: &[String]) -> Result<()> {
    eprintln!("{summary}");
    let expected = tables.join(" ");
    let plural = if tables.len() == 1 { "" } else { "s" };
    eprint!("Type the {noun}{plural} ({expected}) to proceed, anything else to stop: ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Error::invalid("confirmation", format!("cannot read the answer: {e}")))?;
    if !typed_all(&answer, tables) {
        return Err(Error::invalid(
            "confirmation",
            "the typed name did not match; nothing was changed",
        ));
    }
    Ok(())
}

/// Shows the plan; with `--yes` goes on, else asks for the tables' names.
pub(crate) fn confirm(yes: bool, summary: &str, tables: &[String]) -> Result<()> {
    if yes {
        eprintln!("{summary}");
        Ok(())
    } else {
        prompt(summary, "table name", tables)
    }
}

#[cfg(test)]
mod tests {
    use super::typed_all;

    #[test]
    fn the_prompt_wants_every_name_in_order() {
        let names = ["Prod-A".to_string(), "Prod-B".to_string()];
        assert!(typed_all("Prod-A Prod-B\n", &names));
        assert!(typed_all("  Prod-A\tProd-B  ", &names));
        assert!(!typed_all("Prod-A\n", &names));
        assert!(!typed_all("Prod-B Prod-A", &names));
        assert!(!typed_all("Prod-A Prod-B Prod-C", &names));
        assert!(!typed_all("prod-a prod-b", &names));
        assert!(typed_all("Prod-A", &names[..1]));
        assert!(!typed_all("", &names[..1]));
    }
}
