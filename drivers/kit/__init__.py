"""drivers/kit"""
