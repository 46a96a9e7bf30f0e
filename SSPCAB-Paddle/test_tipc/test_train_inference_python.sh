#!/bin/bash
# TIPC lite chain (format B config, 32 lines + line 33 for oneDNN): train -> val -> export -> infer.
#   bash test_tipc/prepare.sh test_tipc/configs/SSPCAB/train_infer_python.txt lite_train_lite_infer
#   bash test_tipc/test_train_inference_python.sh test_tipc/configs/SSPCAB/train_infer_python.txt lite_train_lite_infer
# Every command's outcome is one "Run successfully/failed with command - ..." line in
# test_tipc/output/<model_name>/results_python.log (started afresh); the script itself never fails.
FILENAME=$(realpath "$1")
MODE=${2:-lite_train_lite_infer}
cd "$(dirname "$0")/.." || exit 0                        # SSPCAB-Paddle/
export PYTHONPATH="$(cd .. && pwd)${PYTHONPATH:+:${PYTHONPATH}}"
export PYTHONWARNINGS=ignore
source test_tipc/common_func.sh

line(){ sed -n "$1p" "${FILENAME}"; }
model_name=$(func_parser_value "$(line 2)")
python=$(func_parser_value "$(line 3)")
gpu_list=$(func_parser_value "$(line 4)")
device_key=$(func_parser_key "$(line 5)");      device_value=$(func_parser_value "$(line 5)")
steps_key=$(func_parser_key "$(line 6)");       steps_value=$(func_parser_params "$(func_parser_value "$(line 6)")" "${MODE}")
save_key=$(func_parser_key "$(line 7)")
bs_key=$(func_parser_key "$(line 8)");          bs_value=$(func_parser_params "$(func_parser_value "$(line 8)")" "${MODE}")
pretrain_key=$(func_parser_key "$(line 9)");    pretrain_value=$(func_parser_value "$(line 9)")
train_model_name=$(func_parser_value "$(line 10)")
data_key=$(func_parser_key "$(line 11)");       data_value=$(func_parser_value "$(line 11)")
norm_train=$(func_parser_value "$(line 14)")
eval_py=$(func_parser_value "$(line 17)")
export_save_key=$(func_parser_key "$(line 20)")
export_weight_key=$(func_parser_key "$(line 21)")
norm_export=$(func_parser_value "$(line 22)")
inference_py=$(func_parser_value "$(line 27)")
use_gpu_key=$(func_parser_key "$(line 28)");    use_gpu_list=$(func_parser_value "$(line 28)")
infer_bs_key=$(func_parser_key "$(line 29)");   infer_bs_list=$(func_parser_value "$(line 29)")
infer_model_key=$(func_parser_key "$(line 30)")
image_key=$(func_parser_key "$(line 31)");      image_value=$(func_parser_value "$(line 31)")
benchmark_key=$(func_parser_key "$(line 32)");  benchmark_value=$(func_parser_value "$(line 32)")
mkldnn_key=$(func_parser_key "$(line 33)");     mkldnn_list=$(func_parser_value "$(line 33)")
[ -n "${mkldnn_key}" ] || { mkldnn_key="--use_mkldnn"; mkldnn_list="False"; }

LOG_PATH="./test_tipc/output/${model_name}"
mkdir -p "${LOG_PATH}"
status_log="${LOG_PATH}/results_python.log"
: > "${status_log}"

IFS='|' read -r -a gpus <<< "${gpu_list}"
for gpu in "${gpus[@]}"; do
    if [ "${gpu}" = "-1" ]; then dev="cpu"; else dev="gpu"; export CUDA_VISIBLE_DEVICES=${gpu}; fi
    [ "${device_value}" = "cpu" ] || [ "${dev}" = "cpu" ] || device_value=gpu
    save_log="${LOG_PATH}/norm_train_gpus_${gpu}"
    rm -rf "${save_log}"

    # train (the fixed arguments of line 14, then the keys of lines 5-11)
    cmd="${python} ${norm_train} $(func_set_params "${device_key}" "${device_value}") $(func_set_params "${save_key}" "${save_log}") $(func_set_params "${steps_key}" "${steps_value}") $(func_set_params "${pretrain_key}" "${pretrain_value}") $(func_set_params "${bs_key}" "${bs_value}") $(func_set_params "${data_key}" "${data_value}")"
    eval "${cmd}" > "${LOG_PATH}/train_gpus_${gpu}.log" 2>&1
    status_check $? "${cmd}" "${status_log}"

    # eval on the test split (metrics.json + scores.csv next to each model)
    cmd="${python} ${eval_py} $(func_set_params "${save_key}" "${save_log}") $(func_set_params "${data_key}" "${data_value}")"
    eval "${cmd}" > "${LOG_PATH}/eval_gpus_${gpu}.log" 2>&1
    status_check $? "${cmd}" "${status_log}"

    # export the first trained model (line 10 may be a glob: the lite data holds one category)
    model_path=$(ls ${save_log}/${train_model_name} 2>/dev/null | head -n 1)
    infer_dir="${save_log}/inference"
    cmd="${python} ${norm_export} $(func_set_params "${export_weight_key}" "${model_path:-missing}") $(func_set_params "${export_save_key}" "${infer_dir}")"
    eval "${cmd}" > "${LOG_PATH}/export_gpus_${gpu}.log" 2>&1
    status_check $? "${cmd}" "${status_log}"

    # Paddle Inference: every use_gpu x oneDNN (CPU only) x batch size
    IFS='|' read -r -a use_gpus <<< "${use_gpu_list}"
    IFS='|' read -r -a batch_sizes <<< "${infer_bs_list}"
    IFS='|' read -r -a mkldnns <<< "${mkldnn_list}"
    for use_gpu in "${use_gpus[@]}"; do
        if [ "${use_gpu}" = "True" ] || [ "${use_gpu}" = "true" ]; then
            [ "${dev}" = "gpu" ] || continue                       # no GPU run on a CPU-only chain
            mk_values=("False"); kind="gpu"
        else
            mk_values=("${mkldnns[@]}"); kind="cpu"
        fi
        for mk in "${mk_values[@]}"; do
            for bs in "${batch_sizes[@]}"; do
                log="${LOG_PATH}/python_infer_${kind}_usemkldnn_${mk}_batchsize_${bs}.log"
                cmd="${python} ${inference_py} $(func_set_params "${use_gpu_key}" "${use_gpu}") $(func_set_params "${mkldnn_key}" "${mk}") $(func_set_params "${infer_model_key}" "${infer_dir}") $(func_set_params "${infer_bs_key}" "${bs}") $(func_set_params "${image_key}" "'${image_value}'") $(func_set_params "${benchmark_key}" "${benchmark_value}") --save_dir=${save_log}/infer_${kind}_mkldnn_${mk}_bs_${bs}"
                eval "${cmd}" > "${log}" 2>&1
                status_check $? "${cmd}" "${status_log}"
            done
        done
    done
done
exit 0
