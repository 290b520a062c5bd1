"""The results document: typed dataclasses for results.json and every stage in it (`document`, `extraction`,
`steering`, `leakage`), one converter to and from JSON (`convert`), and reading a results file (`reading`)."""
