"""consultations"""
