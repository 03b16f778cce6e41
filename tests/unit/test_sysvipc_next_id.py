"""A *_next_id sysctl that cannot be written is a clear restore error, never a traceback."""

import builtins

import pytest

from pyckpt import sysvipc
from pyckpt.errors import RestoreConflict
from pyckpt.images.proto import ipc_pb2


def test_unwritable_next_id_is_a_restore_conflict(monkeypatch):
    real_open = builtins.open
    made = []

    def refusing_open(path, *args, **kwargs):
        if str(path).endswith("_next_id"):
            raise PermissionError(13, "Permission denied", path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", refusing_open)
    restorer = sysvipc.Restorer.__new__(sysvipc.Restorer)
    restorer.created = []
    queue = ipc_pb2.MsgQueue(id=32769, perm=ipc_pb2.IpcPerm(key=0x1234))
    with pytest.raises(RestoreConflict, match=r"message queue 32769 .*msg_next_id.*Permission denied"):
        restorer._create("msg", queue, lambda: made.append(1) or 0)
    assert not made and not restorer.created, "created an object with whatever id came"
