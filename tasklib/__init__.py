"""Task modules for tasks.py; each exposes TASKS."""
