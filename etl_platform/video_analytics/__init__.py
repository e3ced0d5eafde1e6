"""The reference medallion pipeline: video analytics (see docs/video_analytics.md)."""
