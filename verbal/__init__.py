"""Verbal: run Tropo, Restcomm/Twilio and Plivo apps on your own carriers."""

__version__ = "0.1.0"
