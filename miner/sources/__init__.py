"""Where jobs come from: Stratum pools, a node over getblocktemplate, the local sandbox job."""
