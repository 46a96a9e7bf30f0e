#!/bin/bash
# TIPC chain for a 51-line ("format A") config: train -> eval -> export -> inference matrix.
# Shared by the paper folders that use format A (STFPM, PaDiM, KDAD): each folder's
# test_tipc/test_train_inference_python.sh changes into that folder and calls this script, e.g.
#   cd STFPM-Paddle && bash test_tipc/test_train_inference_python.sh test_tipc/configs/STFPM/train_infer_python.txt lite_train_lite_infer
# One line per command goes to test_tipc/output/<model_name>/results_python.log:
#   "Run successfully with command - ..." or "Run failed with command - ...". The script itself never fails.
# GPU entries are skipped (no line) when this Paddle has no CUDA device. PYTHON (or TIPC_PYTHON)
# overrides the interpreter named in the config. Paths in the config are relative to the paper folder.
FILENAME=$(cd "$(dirname "$1")" 2>/dev/null && pwd)/$(basename "$1")
MODE=${2:-lite_train_lite_infer}
source "$(dirname "${BASH_SOURCE[0]}")/common_func.sh"
export PYTHONPATH="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)${PYTHONPATH:+:${PYTHONPATH}}"

dataline=$(awk 'NR==1, NR==51{print}' "${FILENAME}")
IFS=$'\n'
lines=(${dataline})
unset IFS

# train_params
model_name=$(func_parser_value "${lines[1]}")
python=${PYTHON:-${TIPC_PYTHON:-$(func_parser_value "${lines[2]}")}}
gpu_list=$(func_parser_value "${lines[3]}")
device_key=$(func_parser_key "${lines[4]}")
device_list=$(func_parser_value "${lines[4]}")
epoch_key=$(func_parser_key "${lines[6]}")
epoch_value=$(func_parser_params "${lines[6]}" "${MODE}")
save_key=$(func_parser_key "${lines[7]}")
save_value=$(func_parser_value "${lines[7]}")
batch_key=$(func_parser_key "${lines[8]}")
batch_value=$(func_parser_params "${lines[8]}" "${MODE}")
pretrain_key=$(func_parser_key "${lines[9]}")
pretrain_value=$(func_parser_params "${lines[9]}" "${MODE}")
trainer_list=$(func_parser_value "${lines[14]}")
norm_train=$(func_parser_value "${lines[15]}")
# eval_params
eval_py=$(func_parser_value "${lines[23]}")
# infer_params
export_dir_key=$(func_parser_key "${lines[27]}")
export_dir_value=$(func_parser_value "${lines[27]}")
export_weight_key=$(func_parser_key "${lines[28]}")
export_weight_value=$(func_parser_value "${lines[28]}")
norm_export=$(func_parser_value "${lines[29]}")
inference_py=$(func_parser_value "${lines[39]}")
use_gpu_key=$(func_parser_key "${lines[40]}")
use_gpu_list=$(func_parser_value "${lines[40]}")
mkldnn_key=$(func_parser_key "${lines[41]}")
mkldnn_list=$(func_parser_value "${lines[41]}")
threads_key=$(func_parser_key "${lines[42]}")
threads_list=$(func_parser_value "${lines[42]}")
infer_batch_key=$(func_parser_key "${lines[43]}")
infer_batch_list=$(func_parser_value "${lines[43]}")
trt_key=$(func_parser_key "${lines[44]}")
trt_list=$(func_parser_value "${lines[44]}")
precision_key=$(func_parser_key "${lines[45]}")
precision_list=$(func_parser_value "${lines[45]}")
model_dir_key=$(func_parser_key "${lines[46]}")
model_dir_value=$(func_parser_value "${lines[46]}")
image_dir_key=$(func_parser_key "${lines[47]}")
image_dir_value=$(func_parser_value "${lines[47]}")
benchmark_key=$(func_parser_key "${lines[49]}")
benchmark_value=$(func_parser_value "${lines[49]}")
infer_key1=$(func_parser_key "${lines[50]}")
infer_value1=$(func_parser_value "${lines[50]}")

LOG_PATH=./test_tipc/output/${model_name}
mkdir -p "${LOG_PATH}"
status_log="${LOG_PATH}/results_python.log"
: > "${status_log}"   # one run, one result list

has_cuda=$(${python} -c "import paddle; print(int(paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0))" 2>/dev/null | tail -n 1)
[ "${has_cuda}" = "1" ] || has_cuda=0

function func_inference(){
    local IFS="|"
    local use_gpu use_mkldnn threads batch_size precision use_trt
    for use_gpu in ${use_gpu_list}; do
        if [ "${use_gpu}" = "False" ] || [ "${use_gpu}" = "false" ]; then
            for use_mkldnn in ${mkldnn_list}; do
                for threads in ${threads_list}; do
                    for batch_size in ${infer_batch_list}; do
                        for precision in ${precision_list}; do
                            if [ "${precision}" = "fp16" ] && [ "${use_mkldnn}" != "True" ]; then
                                continue
                            fi
                            local _log="${LOG_PATH}/python_infer_cpu_usemkldnn_${use_mkldnn}_threads_${threads}_precision_${precision}_batchsize_${batch_size}.log"
                            local cmd="${python} ${inference_py} $(func_set_params "${use_gpu_key}" "${use_gpu}") $(func_set_params "${mkldnn_key}" "${use_mkldnn}") $(func_set_params "${threads_key}" "${threads}") $(func_set_params "${model_dir_key}" "${model_dir_value}") $(func_set_params "${infer_batch_key}" "${batch_size}") $(func_set_params "${image_dir_key}" "${image_dir_value}") $(func_set_params "${benchmark_key}" "${benchmark_value}") $(func_set_params "${precision_key}" "${precision}") $(func_set_params "${infer_key1}" "${infer_value1}") > ${_log} 2>&1"
                            eval "${cmd}"
                            status_check $? "${cmd}" "${status_log}"
                            tail -n 2 "${_log}"
                        done
                    done
                done
            done
        else
            if [ "${has_cuda}" != "1" ]; then
                echo "skip GPU inference: this Paddle has no CUDA device"
                continue
            fi
            for use_trt in ${trt_list}; do
                for precision in ${precision_list}; do
                    for batch_size in ${infer_batch_list}; do
                        local _log="${LOG_PATH}/python_infer_gpu_usetrt_${use_trt}_precision_${precision}_batchsize_${batch_size}.log"
                        local cmd="${python} ${inference_py} $(func_set_params "${use_gpu_key}" "${use_gpu}") $(func_set_params "${trt_key}" "${use_trt}") $(func_set_params "${precision_key}" "${precision}") $(func_set_params "${model_dir_key}" "${model_dir_value}") $(func_set_params "${infer_batch_key}" "${batch_size}") $(func_set_params "${image_dir_key}" "${image_dir_value}") $(func_set_params "${benchmark_key}" "${benchmark_value}") $(func_set_params "${infer_key1}" "${infer_value1}") > ${_log} 2>&1"
                        eval "${cmd}"
                        status_check $? "${cmd}" "${status_log}"
                        tail -n 2 "${_log}"
                    done
                done
            done
        fi
    done
}

if [ "${MODE}" != "lite_train_lite_infer" ]; then
    echo "only lite_train_lite_infer is supported, got '${MODE}'"
    exit 0
fi

IFS="|" read -r -a gpus <<< "${gpu_list}"
IFS="|" read -r -a devices <<< "${device_list}"
for i in "${!gpus[@]}"; do
    gpu=${gpus[$i]}
    device=${devices[$i]:-cpu}
    if [ "${device}" != "cpu" ]; then
        if [ "${has_cuda}" != "1" ]; then
            echo "skip training on ${device}: this Paddle has no CUDA device"
            continue
        fi
        export CUDA_VISIBLE_DEVICES=${gpu}
    fi   # a CPU entry trains with --device=cpu and leaves the GPUs visible for the GPU inference rows
    for trainer in ${trainer_list//|/ }; do
        if [ "${trainer}" != "norm_train" ]; then
            continue   # only norm_train is defined in these folders
        fi
        _log="${LOG_PATH}/train_${device}.log"
        cmd="${python} ${norm_train} $(func_set_params "${device_key}" "${device}") $(func_set_params "${epoch_key}" "${epoch_value}") $(func_set_params "${save_key}" "${save_value}") $(func_set_params "${batch_key}" "${batch_value}") $(func_set_params "${pretrain_key}" "${pretrain_value}") > ${_log} 2>&1"
        eval "${cmd}"
        status_check $? "${cmd}" "${status_log}"
        tail -n 2 "${_log}"
        if [ "${eval_py}" != "null" ]; then
            _log="${LOG_PATH}/eval_${device}.log"
            cmd="${python} ${eval_py} $(func_set_params "${device_key}" "${device}") > ${_log} 2>&1"
            eval "${cmd}"
            status_check $? "${cmd}" "${status_log}"
            tail -n 1 "${_log}"
        fi
        _log="${LOG_PATH}/export_${device}.log"
        cmd="${python} ${norm_export} $(func_set_params "${export_weight_key}" "${export_weight_value}") $(func_set_params "${export_dir_key}" "${export_dir_value}") > ${_log} 2>&1"
        eval "${cmd}"
        status_check $? "${cmd}" "${status_log}"
        func_inference
    done
done
echo "results in ${status_log}"
exit 0
