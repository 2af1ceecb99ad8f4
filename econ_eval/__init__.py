"""econ-eval: an economics-domain LLM benchmark and fine-tuning kit."""

import logging as _logging

__version__ = "0.1.0"


class _OfflineKernelNoise(_logging.Filter):
    """bitsandbytes (on CPUs with AVX512-BF16) tries to fetch a kernel from the Hugging Face Hub at import and
    warns when it cannot. econ-eval runs offline and does not use that kernel: drop just that warning."""

    def filter(self, record: _logging.LogRecord) -> bool:
        return "from kernels-community" not in record.getMessage()


_logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(_OfflineKernelNoise())
