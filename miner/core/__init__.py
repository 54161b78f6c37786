"""miner/core"""
