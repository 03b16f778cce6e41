"""The image folder: protobuf messages, raw page files, a checksum manifest.

File names, in one place:
  inventory.img          Inventory (what made the image, what it needs)
  pstree.img             PsTree (processes, parents first)
  core-<pid>.img         Task (process + threads, registers)
  mm-<pid>.img           Mm (VMAs, mm fields, auxv)
  pagemap-<pid>.img      PageMap (runs of pages, in pages-file order)
  pages-<pid>.img        raw pages
  fds-<pid>.img          FdTable
  files.img              Files (open file descriptions)
  ghost-<id>.img         a memfd's contents, or a deleted file's data extents back to back (OpenFile.deleted)
  shmem-<id>.img         data of shared anonymous memory (MAP_SHARED|MAP_ANONYMOUS): runs, no holes
  ipc.img                Ipc (mapped memfd objects, SysV shm/semaphores/message queues)
  memfd-<ino>.img        contents of a mapped memfd no fd holds (else its ghost-<id>.img)
  sysvshm-<shmid>.img    contents of a SysV shared memory segment
  unixsk-<ino>.img       UnixQueue: messages queued on a unix socket
  unixsk-sent-<ino>.img  UnixQueue: what a client sent on a connection not yet accepted
  manifest.img           Manifest: size + sha256 of every file above
  *.log                  logs; not part of the image

A pre-dump (Inventory.pre_dump) holds only inventory, pstree, mm, pagemap and
pages. An incremental image names its parent in the inventory (a path relative
to its folder, and the sha256 of the parent's manifest.img); pages it keeps
there are its pagemaps' in_parent runs (pyckpt/incremental.py).
"""

FORMAT_VERSION = 1

INVENTORY = "inventory.img"
PSTREE = "pstree.img"
FILES = "files.img"
MANIFEST = "manifest.img"
IPC = "ipc.img"


def core(pid):
    return f"core-{pid}.img"


def mm(pid):
    return f"mm-{pid}.img"


def pagemap(pid):
    return f"pagemap-{pid}.img"


def pages(pid):
    return f"pages-{pid}.img"


def fds(pid):
    return f"fds-{pid}.img"


def ghost(file_id):
    return f"ghost-{file_id}.img"


def memfd(ino):
    return f"memfd-{ino}.img"


def sysv_shm(shmid):
    return f"sysvshm-{shmid}.img"


def unix_queue(ino):
    return f"unixsk-{ino}.img"


def unix_sent(ino):
    return f"unixsk-sent-{ino}.img"
