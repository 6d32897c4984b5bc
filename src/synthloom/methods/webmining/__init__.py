"""Web mining of naturally occurring instruction data (recipe ``web-mining``): MAmmoTH2 /
WebInstruct (Yue et al. 2024, arXiv 2405.03548) -- a fast recall classifier, extraction of the
Q-A pairs already present in the text, answer refinement."""
