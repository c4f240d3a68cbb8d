"""CI's fix-up for torchaudio/torchvision wheels built for a CUDA torch beside the CPU torch (see .ci/run)."""
import importlib.util
import pathlib
import subprocess
import sys


def imports(name: str) -> bool:
    return subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True).returncode == 0


spec = importlib.util.find_spec("torchaudio")
if spec and not imports("torchaudio"):
    for lib in (pathlib.Path(spec.origin).parent / "lib").glob("*.so"):
        lib.unlink()
    print("torchaudio: removed its CUDA-built extension (this torch is a CPU build)")
    if not imports("torchaudio"):
        sys.exit("torchaudio still does not import")
if importlib.util.find_spec("torchvision") and not imports("torchvision"):
    subprocess.run([sys.executable, "-m", "pip", "uninstall", "--quiet", "-y", "torchvision"], check=True)
    print("torchvision: removed (built for a CUDA torch, and unused here)")
