"""Knowledge-graph questions (recipe ``kg-questions``): KAQG / MedReason-style -- triples per
chunk, a merged entity graph with node degrees, deterministic path sampling, questions whose
difficulty follows path length and node degree, answers with the reasoning path."""
