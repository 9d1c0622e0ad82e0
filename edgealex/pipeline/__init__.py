"""Classification of frames (``classify.py``) and the pipelined camera-to-verdict loop (``loop.py``)."""
