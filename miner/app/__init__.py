"""miner/app"""
