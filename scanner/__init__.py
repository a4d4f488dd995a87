"""cos-scanner: async bulk content moderation of Tencent Cloud COS buckets."""

__version__ = "0.1.0"
