//! Reading the markdown type-mapping tables in `docs/`, for the tests that check them against
//! the code.

/// The `| a | b | ... |` rows (first two cells, backticks removed) of the first table under
/// `heading`.
pub fn rows(doc: &str, heading: &str) -> Vec<(String, String)> {
    let section = doc.split(heading).nth(1).expect("heading present");
    section
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(|c| c.trim().trim_matches('`')).collect();
            (cells[1].to_string(), cells[2].to_string())
        })
        .collect()
}
