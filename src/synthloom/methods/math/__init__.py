"""Math data methods: tool-only arithmetic, and recipes checked against gold answers."""
