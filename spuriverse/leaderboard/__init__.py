"""Leaderboards: register benchmark versions, verify and store submissions, render pages."""
