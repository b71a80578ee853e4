"""What one visitor may send and hold: every cap the page enforces, in one place (no heavy imports).

Sizes are chosen for what the demo needs, far above it: the text model reads 128-512 tokens
(a few thousand characters), the image model 28x28 pixels.
"""

MAX_NOTE_CHARS = 20_000  # a note is cut here before anything reads it (the model reads far less)
MAX_REQUEST_BYTES = 256 * 1024  # a request body other than an upload: a full note in JSON, with room to spare
MAX_UPLOAD_BYTES = 20 * 1024 * 1024  # one uploaded file
MAX_UPLOAD_BYTES_PER_CLIENT = 64 * 1024 * 1024  # uploads one client address holds on the server at a time
# Analyses one session may have queued or running at once. The page itself never sends a second
# one while the first is pending (a click's trigger_mode is "once"), so 1 costs a visitor nothing
# and leaves the other model slot (2 run at once) to everyone else.
ANALYSES_PER_SESSION = 1
ANALYSES_WAITING = 40  # analyses all sessions together may have queued; past it a new one is told to retry
# Uploaded and temporary files are deleted every 5 minutes once older than 15 minutes.
CACHE_DELETION = (300, 900)
# Calls waiting in the queue at most; past it a caller is told the queue is full. Analyses run
# 2 at a time and may hold at most ANALYSES_WAITING of these slots (``RequestGuard``); slider
# moves skip the queue (``guard.skip_queue_unless_model``), so they never wait behind analyses
# nor find the queue full of them.
MAX_QUEUED_EVENTS = 200
UPLOAD_WINDOW_S = sum(CACHE_DELETION)  # an upload is deleted within this many seconds of arriving
# Batch analysis (one uploaded CSV of notes or zip of images): rows and bytes per batch. A batch holds
# one of the two model slots while it runs (every other visitor's analysis shares the other), so it is
# kept to a size a class or a small evaluation set needs. 10 MB holds 500 notes of 20,000 characters.
BATCH_MAX_ROWS = 500
BATCH_MAX_BYTES = 10 * 1024 * 1024  # the CSV or zip as uploaded (a zip's members may inflate to 4x this in all)
BATCH_MAX_INFLATED_BYTES = 4 * BATCH_MAX_BYTES
BATCH_CHUNK = 32  # inputs run through the model at once (the progress bar moves once per chunk)
