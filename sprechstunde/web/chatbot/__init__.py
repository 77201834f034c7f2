"""chatbot"""
