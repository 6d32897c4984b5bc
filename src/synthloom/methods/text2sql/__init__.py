"""Text-to-SQL data in the manner of OmniSQL (Li et al. 2025, arXiv 2503.02240).

Databases (a real SQLite file, or schemas the model proposes, materialised with generated rows)
→ SQL by complexity level, executed and kept only when it runs and returns rows → questions
back-translated in one of nine styles → a chain of thought that ends with the verified SQL.
"""
