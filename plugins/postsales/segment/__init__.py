"""Segmentation: five approaches, health score, quadrant, engagement model — computed in SQL."""
