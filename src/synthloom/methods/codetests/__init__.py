"""Code with executed unit tests: OSS-Instruct (Magicoder, Wei et al. 2023, arXiv 2312.02120)
seeds problems with real code snippets; solutions and assert-based tests run in the sandbox.
The tool-maker variant follows LATM (Cai et al. 2023, arXiv 2305.17126): a verified reusable
function, then tool-user programs (tool + call) executed in the sandbox.
"""
