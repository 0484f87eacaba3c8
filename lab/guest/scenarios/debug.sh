# Not run by `make check`: brings the lab up and dumps the CXL view, for lab
# development (python3 lab/harness/lab.py run debug).
lab_bringup >&3 2>&1
for d in /sys/bus/cxl/devices/*; do
	echo "$(basename "$d") -> $(readlink -f "$d")" >&3
done
for r in /sys/bus/cxl/devices/region*; do
	for a in target0 commit resource size; do echo "$(basename $r) $a=$(cat $r/$a)" >&3; done
done
