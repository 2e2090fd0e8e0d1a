# cython: language_level=3
"""`ingest.session.listener` compiled by Cython: the same class as ``listener.py``, in C.

picows calls ``on_ws_frame`` once per frame. Overridden in Python, that is an interpreted call per
frame, and reading ``frame.msg_type`` from Python builds a `picows.WSMsgType` member each time
(~0.1 us warm, `timeit`). Here the override is C, and the frame's fields are read as C values:
nothing between picows and ``deliver`` but the payload's copy. Extending picows's C types ties
this build to the picows release it was compiled against (pyproject pins it for both).
"""

from picows.picows cimport WSFrame, WSListener, WSMsgType, WSTransport


cdef class FrameListener(WSListener):
    cdef public object deliver
    cdef public object other
    cdef public bint in_pieces

    cpdef on_ws_frame(self, WSTransport transport, WSFrame frame):
        if frame.fin and not self.in_pieces:
            if frame.msg_type == WSMsgType.TEXT:
                self.deliver(frame.get_payload_as_bytes(), False)
                return
            if frame.msg_type == WSMsgType.BINARY:
                self.deliver(frame.get_payload_as_bytes(), True)
                return
        self.other(transport, frame)
