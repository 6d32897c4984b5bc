"""Code with executed unit tests: OSS-Instruct (Magicoder, Wei et al. 2023, arXiv 2312.02120)
seeds problems with real code snippets; solutions and assert-based tests run in the sandbox.
LATM (the tool-maker recipe) is ``synthloom.methods.latm``.
"""
