"""CPU virtualization: VT-x/AMD-V, second-level address translation (EPT/NPT), nesting, /dev/kvm."""

from __future__ import annotations

from vnet.host.checks.base import KVM_API_VERSION, HostView, Result, Status, capability, one

VIRT_FLAGS = {"vmx": "Intel VT-x", "svm": "AMD-V"}
# hardware-virtualization flag -> (kvm module, SLAT flag in /proc/cpuinfo, its kvm parameter, name)
KVM = {"vmx": ("kvm_intel", "ept", "ept", "EPT"), "svm": ("kvm_amd", "npt", "npt", "NPT/RVI")}
# KVM flavours that run without VT-x/AMD-V and cannot boot an ordinary guest kernel
PARAVIRTUAL_KVM = {"kvm_pvm": "kvm_pvm: PVM, paravirtual KVM for PVM-enabled guest kernels only"}
TCG = "VMs run under TCG (QEMU's emulator, ~10x slower); `accel: auto` picks it"


def cpu_flags(host: HostView) -> set[str] | None:
    """The `flags` of the first CPU in /proc/cpuinfo; None when the file cannot be read."""
    text = host.read("/proc/cpuinfo")
    if text is None:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return set(value.split())
    return set()


def vendor(host: HostView) -> str:
    """`intel`, `amd` or `other`, from /proc/cpuinfo's vendor_id."""
    text = host.read("/proc/cpuinfo") or ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "vendor_id":
            return {"GenuineIntel": "intel", "AuthenticAMD": "amd"}.get(value.strip(), "other")
    return "other"


def virt_flag(host: HostView) -> str | None:
    flags = cpu_flags(host) or set()
    return next((flag for flag in VIRT_FLAGS if flag in flags), None)


def module_param(host: HostView, module: str, param: str) -> str | None:
    return host.read(f"/sys/module/{module}/parameters/{param}")


def enabled(value: str | None) -> bool:
    return value in ("Y", "1")


@capability("cpu-virtualization")
def cpu_virtualization(host: HostView) -> list[Result]:
    name = "cpu-virtualization"
    flags = cpu_flags(host)
    if flags is None:
        return one(name, Status.WARN, "/proc/cpuinfo: unreadable", "mount /proc")
    flag = virt_flag(host)
    if flag:
        return one(name, Status.PASS, f"/proc/cpuinfo flags: {flag} ({VIRT_FLAGS[flag]})")
    guest = " (the `hypervisor` flag is set: this host is itself a VM)" if "hypervisor" in flags else ""
    return one(name, Status.WARN, f"/proc/cpuinfo flags: no vmx or svm{guest}; {TCG}",
               "enable VT-x/AMD-V in the firmware; in a VM, enable nested virtualization on the "
               "outer hypervisor")


@capability("slat")
def second_level_translation(host: HostView) -> list[Result]:
    name = "slat"
    flag = virt_flag(host)
    if flag is None:
        return one(name, Status.NA, "/proc/cpuinfo flags: no vmx or svm (no hardware virtualization)")
    module, slat, param, title = KVM[flag]
    has_flag = slat in (cpu_flags(host) or set())
    value = module_param(host, module, param)
    evidence = (f"/proc/cpuinfo flags: {slat if has_flag else f'no {slat}'}; "
                f"/sys/module/{module}/parameters/{param}: {value if value is not None else 'absent'}")
    if not has_flag:
        return one(name, Status.WARN, f"{evidence}; KVM falls back to shadow page tables (slow)",
                   f"a CPU with {title}, or expose {slat} to this VM on the outer hypervisor")
    if value is not None and not enabled(value):
        return one(name, Status.WARN, f"{evidence}; {title} is switched off in {module}",
                   f"reload {module} with {param}=1 (modprobe -r {module}; modprobe {module} {param}=1)")
    return one(name, Status.PASS, evidence + ("" if value is not None else f" ({module} not loaded)"))


@capability("nested-virtualization")
def nested(host: HostView) -> list[Result]:
    name = "nested-virtualization"
    flag = virt_flag(host)
    if flag is None:
        return one(name, Status.NA, "/proc/cpuinfo flags: no vmx or svm (no hardware virtualization)")
    module = KVM[flag][0]
    value = module_param(host, module, "nested")
    where = f"/sys/module/{module}/parameters/nested"
    if value is None:
        return one(name, Status.WARN, f"{where}: absent ({module} not loaded)", f"modprobe {module}")
    if enabled(value):
        return one(name, Status.PASS, f"{where}: {value}")
    return one(name, Status.WARN, f"{where}: {value}; guests cannot run their own VMs with KVM",
               f"echo 'options {module} nested=1' > /etc/modprobe.d/kvm-nested.conf and reload {module}")


@capability("kvm")
def kvm_device(host: HostView) -> list[Result]:
    name = "kvm"
    flag = virt_flag(host)
    modules = [m for m in host.listdir("/sys/module") if m == "kvm" or m.startswith("kvm_")]
    loaded = f" (modules: {', '.join(PARAVIRTUAL_KVM.get(m, m) for m in modules)})" if modules else ""
    if not host.exists("/dev/kvm"):
        if flag is None:
            return one(name, Status.WARN, f"/dev/kvm: absent; no vmx or svm; {TCG}",
                       "a host with VT-x/AMD-V (or nested virtualization in this VM)")
        return one(name, Status.WARN, f"/dev/kvm: absent{loaded}; {TCG}",
                   f"modprobe {KVM[flag][0]}")
    answer = host.probes.kvm_api_version(host.path("/dev/kvm"))
    asked = {int: f"KVM_GET_API_VERSION {answer}", str: answer, type(None): "snapshot: existence only"}
    evidence = f"/dev/kvm: exists{loaded}, {asked[type(answer)]}"
    if flag is None:
        return one(name, Status.WARN, f"{evidence}; but /proc/cpuinfo has no vmx or svm, so this KVM "
                   f"cannot run ordinary guests (`-enable-kvm` hangs); {TCG}",
                   "use `accel: tcg` (what `auto` picks here), or a host with VT-x/AMD-V")
    if isinstance(answer, str):
        return one(name, Status.FAIL, evidence, "run as root or add the user to group kvm")
    if answer is not None and answer != KVM_API_VERSION:
        return one(name, Status.FAIL, f"{evidence}, expected {KVM_API_VERSION}",
                   "a kernel with a standard KVM")
    return one(name, Status.PASS, evidence)
