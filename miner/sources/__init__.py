"""miner/sources"""
