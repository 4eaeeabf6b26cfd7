"""Run one SCALE-Sim layer in this process and print its cycle counts as JSON (used in a subprocess).

SCALE-Sim 3.0.0 calls exit() on a missing file and prints freely, so `scalesim_backend` runs this
module in a child process with a timeout. The config and the topology row are built in memory:
no config, topology or layout files, no trace files.

stdin: {"rows", "cols", "dataflow", "ifmap_sram_kb", "filter_sram_kb", "ofmap_sram_kb",
        "ifmap_bw", "filter_bw", "ofmap_bw", "layer": [ifmap_h, ifmap_w, filter_h, filter_w,
        channels, filters, stride_h, stride_w]}
stdout (last line): {"overall": cycles incl. prefetch, "total": compute + stall, "stall", "compute"}
"""

from __future__ import annotations

import json
import sys
from typing import Any


def simulate(spec: dict[str, Any]) -> dict[str, int]:
    from scalesim.layout_utils import layouts
    from scalesim.scale_config import scale_config
    from scalesim.single_layer_sim import single_layer_sim
    from scalesim.topology_utils import topologies

    cfg = scale_config()
    cfg.run_name = "splitsdk"
    cfg.array_rows, cfg.array_cols = int(spec["rows"]), int(spec["cols"])
    cfg.ifmap_sz_kb = int(spec["ifmap_sram_kb"])
    cfg.filter_sz_kb = int(spec["filter_sram_kb"])
    cfg.ofmap_sz_kb = int(spec["ofmap_sram_kb"])
    cfg.df = str(spec["dataflow"])
    cfg.use_user_bandwidth = True
    # In USER mode SCALE-Sim takes the ifmap/filter DRAM bandwidth from the layout section and the
    # ofmap one from Bandwidth; one bank each so any integer bandwidth divides evenly.
    cfg.bandwidths = [int(spec["ofmap_bw"])]
    cfg.ifmap_sram_bank_bandwidth = int(spec["ifmap_bw"])
    cfg.filter_sram_bank_bandwidth = int(spec["filter_bw"])
    cfg.ifmap_sram_bank_num = cfg.filter_sram_bank_num = 1
    cfg.req_buf_sz_rd = cfg.req_buf_sz_wr = 512
    cfg.valid_conf_flag = True

    topo = topologies()
    row = [int(x) for x in spec["layer"]]
    topo.load_layer_params_from_list("layer", ["layer", *row, 1, 1])  # dense (1:1 sparsity)
    topo.topo_calc_hyperparams()

    sim = single_layer_sim()
    sim.set_params(layer_id=0, config_obj=cfg, topology_obj=topo, layout_obj=layouts(), verbose=False)
    sim.run()
    overall, total, stall = (int(x) for x in sim.get_compute_report_items()[:3])
    return {"overall": overall, "total": total, "stall": stall, "compute": total - stall}


def main() -> int:
    spec = json.loads(sys.stdin.read())
    result = simulate(spec)
    sys.stdout.write("\n" + json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
