"""Magpie (Xu et al. 2024, arXiv 2406.08464): an aligned model writes its own user queries.

Given only the pre-query part of its chat template as a raw completion prompt, an aligned
model continues as the user; the query is then answered through the chat interface. With
``turns`` > 1 the conversation goes on (Magpie-MT): the history plus a fresh pre-query prefix
make the model write the next user message.
"""
