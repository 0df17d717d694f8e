"""Non-neural baselines and oracles: confusion networks, o_nb / o_cp oracles, ROVER, chrF MBR, the outputs of each (one text per record) and the report."""
