"""An image as plain data (for `pyckpt show`): registers and addresses in hex."""

import base64

from google.protobuf.json_format import MessageToDict

from . import images, incremental
from .images.proto import core_pb2, files_pb2, ipc_pb2, mm_pb2
from .images.store import ImageReader

_PROT = ((1, "r"), (2, "w"), (4, "x"))


def _dict(message):
    return MessageToDict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


def _hex_fields(d, names):
    for name in names:
        if name in d:
            d[name] = hex(int(d[name]))


def image_as_dict(image_dir, verify=True):
    reader = ImageReader(image_dir, verify=verify)
    tree = reader.read_message(images.PSTREE, files_pb2.PsTree)
    out = {"inventory": _dict(reader.inventory), "tree": _dict(tree)["processes"], "processes": []}
    where = {}
    if reader.inventory.parent:
        out["chain"], where = incremental.describe_chain(reader, tree)
    if reader.inventory.pre_dump:
        for entry in tree.processes:
            page_map = reader.read_message(images.pagemap(entry.pid), mm_pb2.PageMap)
            out["processes"].append({"pid": entry.pid, "pagemap": _pagemap_dict(reader, page_map, where, entry.pid)})
        return out
    files = reader.read_message(images.FILES, files_pb2.Files)
    out.update({"files": [_dict(f) for f in files.files], "ptys": [_dict(p) for p in files.ptys]})
    if reader.has(images.IPC):
        ipc = _dict(reader.read_message(images.IPC, ipc_pb2.Ipc))
        for queue in ipc.get("msg", []):
            for m in queue.get("messages", []):
                m["size"] = len(base64.b64decode(m.pop("data", "")))
        out["ipc"] = ipc
    for entry in tree.processes:
        pid = entry.pid
        if entry.zombie:
            out["processes"].append({"pid": pid, "zombie": True, "exit_status": entry.exit_status})
            continue
        task = _dict(reader.read_message(images.core(pid), core_pb2.Task))
        for thread in task.get("threads", []):
            regs = thread.get("regs", {})
            for arch_name in ("x86_64", "aarch64", "mips64"):
                if arch_name in regs:
                    regs[arch_name] = {k: hex(int(v)) for k, v in regs[arch_name].items()}
            for regset in regs.get("extra", []):
                regset["size"] = len(base64.b64decode(regset.pop("data", "")))  # base64 padding would overcount
            _hex_fields(thread, ("sigmask", "clear_child_tid", "robust_list"))
            for p in thread.get("pending", []):
                p.pop("raw", None)
        _hex_fields(task.get("creds", {}), ("cap_inh", "cap_prm", "cap_eff", "cap_bnd", "cap_amb"))
        for action in task.get("sigactions", []):
            _hex_fields(action, ("handler", "flags", "restorer", "mask"))
        mm = reader.read_message(images.mm(pid), mm_pb2.Mm)
        mm_dict = _dict(mm)
        mm_dict.pop("auxv", None)
        for key in list(mm_dict):
            if key.startswith(("start_", "end_", "arg_", "env_")) or key == "brk":
                mm_dict[key] = hex(int(mm_dict[key]))
        mm_dict["vmas"] = [_vma_dict(v) for v in mm.vmas]
        page_map = reader.read_message(images.pagemap(pid), mm_pb2.PageMap)
        fds = reader.read_message(images.fds(pid), files_pb2.FdTable)
        out["processes"].append({
            "pid": pid, "task": task, "mm": mm_dict, "pagemap": _pagemap_dict(reader, page_map, where, pid),
            "fds": [_dict(f) for f in fds.fds],
        })
    return out


def _pagemap_dict(reader, page_map, where, pid):
    pages = sum(r.nr_pages for r in page_map.runs)
    out = {"pages_file": page_map.pages_file, "runs": len(page_map.runs), "pages": pages,
           "bytes": pages * reader.inventory.page_size,
           "inherited_pages": sum(r.nr_pages for r in page_map.inherited)}
    if page_map.in_parent:
        out["in_parent_pages"] = sum(r.nr_pages for r in page_map.in_parent)
    if pid in where:
        out["pages_by_image"] = where[pid]   # image folder -> pages of this process it holds
    return out


def _vma_dict(vma):
    d = {
        "start": hex(vma.start), "end": hex(vma.end),
        "prot": "".join(c if vma.prot & bit else "-" for bit, c in _PROT),
        "kind": mm_pb2.Vma.Kind.Name(vma.kind),
    }
    if vma.name:
        d["name"] = vma.name
    if vma.kind in (mm_pb2.Vma.SHMEM, mm_pb2.Vma.MEMFD_SHARED, mm_pb2.Vma.MEMFD_PRIVATE, mm_pb2.Vma.SYSV_SHM):
        d["object"] = vma.shmem_id
    if vma.HasField("file"):
        d["file"] = vma.file.path
        d["pgoff"] = hex(vma.pgoff)
    if vma.growsdown:
        d["growsdown"] = True
    if vma.vmflags:
        d["vmflags"] = " ".join(vma.vmflags)
    if vma.guards:
        d["guards"] = [f"{g.vaddr:#x}+{g.nr_pages}p" for g in vma.guards]
    return d
