"""Steps and helpers that several methods use, named by role rather than by the paper that
first needed them: ``seeds`` (``seed_instruction``), ``reject`` (``drop_rejected``),
``question_dedup`` (``docqa_dedup_questions``), ``overlap`` (answer-passage word support),
``entities`` (entity keys and mentions) and ``corpus`` (chunk provenance, seeded choice and
usage splitting for the document-corpus recipes). Text normalisation is
``synthloom.quality.text``'s."""
