"""Knowledge graphs: recipe ``kg-questions`` (KAQG -- triples per chunk, concepts, a merged
entity graph, seeded paths, questions at a difficulty level with Bloom's-taxonomy item features,
IRT difficulty from a model's answers) and recipe ``kg-reasoning`` (MedReason -- chains of
thought for existing QA pairs along KG paths between question and answer entities)."""
