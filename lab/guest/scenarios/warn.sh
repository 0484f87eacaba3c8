# Harness self-test: a WARN reached in the guest must fail the run. The
# harness expects this boot's console to be flagged and fails otherwise.
ktap_plan warn 1
check "LKDTM reaches a WARN" sh -c 'echo WARNING >/sys/kernel/debug/provoke-crash/DIRECT'
