#!/bin/bash
# TIPC chain for a 51-line ("format A") config: train -> eval -> export -> Paddle Inference over the
# CPU/GPU matrix. Shared by the paper folders that use format A (PaDiM, STFPM, KDAD); each folder's
# test_tipc/test_train_inference_python.sh calls it from inside that folder:
#   bash test_tipc/test_train_inference_python.sh test_tipc/configs/PaDiM/train_infer_python.txt lite_train_lite_infer
# Every step's exit status becomes one line of test_tipc/output/<model>/results_python.log; the script
# itself always exits 0 (the caller reads the log).
source "$(dirname "${BASH_SOURCE[0]}")/common_func.sh"
export PYTHONPATH="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)${PYTHONPATH:+:${PYTHONPATH}}"

FILENAME=$1
MODE=$2
dataline=$(awk 'NR==1, NR==51{print}' "${FILENAME}")
IFS=$'\n'
lines=(${dataline})

model_name=$(func_parser_value "${lines[1]}")
python=${PYTHON:-$(func_parser_value "${lines[2]}")}
gpu_list=$(func_parser_value "${lines[3]}")
device_key=$(func_parser_key "${lines[4]}")
save_model_key=$(func_parser_key "${lines[7]}")
save_model_value=$(func_parser_value "${lines[7]}")
batch_key=$(func_parser_key "${lines[8]}")
batch_value=$(func_parser_params "$(func_parser_value "${lines[8]}")" "${MODE}")
pretrain_key=$(func_parser_key "${lines[9]}")
pretrain_value=$(func_parser_params "$(func_parser_value "${lines[9]}")" "${MODE}")
train_model_name=$(func_parser_value "${lines[10]}")
norm_train=$(func_parser_value "${lines[15]}")
eval_cmd=$(func_parser_value "${lines[23]}")
save_infer_key=$(func_parser_key "${lines[27]}")
save_infer_value=$(func_parser_value "${lines[27]}")
export_weight_key=$(func_parser_key "${lines[28]}")
export_weight_value=$(func_parser_value "${lines[28]}")
norm_export=$(func_parser_value "${lines[29]}")
inference_cmd=$(func_parser_value "${lines[39]}")
use_gpu_key=$(func_parser_key "${lines[40]}")
use_gpu_list=$(func_parser_value "${lines[40]}")
use_mkldnn_key=$(func_parser_key "${lines[41]}")
use_mkldnn_list=$(func_parser_value "${lines[41]}")
cpu_threads_key=$(func_parser_key "${lines[42]}")
cpu_threads_list=$(func_parser_value "${lines[42]}")
infer_batch_key=$(func_parser_key "${lines[43]}")
infer_batch_list=$(func_parser_value "${lines[43]}")
use_trt_key=$(func_parser_key "${lines[44]}")
use_trt_list=$(func_parser_value "${lines[44]}")
precision_key=$(func_parser_key "${lines[45]}")
precision_list=$(func_parser_value "${lines[45]}")
infer_model_key=$(func_parser_key "${lines[46]}")
infer_model_value=$(func_parser_value "${lines[46]}")
image_dir_key=$(func_parser_key "${lines[47]}")
infer_img_dir=$(func_parser_value "${lines[47]}")
benchmark_key=$(func_parser_key "${lines[49]}")
benchmark_value=$(func_parser_value "${lines[49]}")

LOG_PATH="./test_tipc/output/${model_name}"
mkdir -p "${LOG_PATH}"
status_log="${LOG_PATH}/results_python.log"
rm -f "${status_log}"

has_cuda=$(${python} -c "import paddle; print(int(paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0))" 2>/dev/null || echo 0)

# ---- train (one entry per gpu in gpu_list; CPU when Paddle has no CUDA)
IFS="|"
for gpu in ${gpu_list}; do
    if [ "${has_cuda}" = "1" ] && [ "${gpu}" != "-1" ]; then
        export CUDA_VISIBLE_DEVICES=${gpu}
        device="gpu"
    else
        device="cpu"
    fi
    set_device=$(func_set_params "${device_key}" "${device}")
    set_save=$(func_set_params "${save_model_key}" "${save_model_value}")
    set_batch=$(func_set_params "${batch_key}" "${batch_value}")
    set_pretrain=$(func_set_params "${pretrain_key}" "${pretrain_value}")
    cmd="${python} ${norm_train} ${set_device} ${set_save} ${set_batch} ${set_pretrain}"
    eval "${cmd}" > "${LOG_PATH}/train_${device}.log" 2>&1
    status_check $? "${cmd}" "${status_log}"
    break  # single-card lite mode: one training is enough
done

# ---- eval
if [ "${eval_cmd}" != "null" ]; then
    cmd="${python} ${eval_cmd}"
    eval "${cmd}" > "${LOG_PATH}/eval.log" 2>&1
    status_check $? "${cmd}" "${status_log}"
fi

# ---- export
set_export_weight=$(func_set_params "${export_weight_key}" "${export_weight_value}")
set_save_infer=$(func_set_params "${save_infer_key}" "${save_infer_value}")
cmd="${python} ${norm_export} ${set_export_weight} ${set_save_infer}"
eval "${cmd}" > "${LOG_PATH}/export.log" 2>&1
status_check $? "${cmd}" "${status_log}"

# ---- inference matrix
set_model=$(func_set_params "${infer_model_key}" "${infer_model_value}")
set_img=$(func_set_params "${image_dir_key}" "${infer_img_dir}")
set_benchmark=$(func_set_params "${benchmark_key}" "${benchmark_value}")
for use_gpu in ${use_gpu_list}; do
    if [ "${use_gpu}" = "True" ] || [ "${use_gpu}" = "true" ]; then
        if [ "${has_cuda}" != "1" ]; then
            echo "skip GPU inference: this Paddle has no CUDA device"
            continue
        fi
        for use_trt in ${use_trt_list}; do
            for precision in ${precision_list}; do
                for bs in ${infer_batch_list}; do
                    _log="${LOG_PATH}/python_infer_gpu_usetrt_${use_trt}_precision_${precision}_batchsize_${bs}.log"
                    cmd="${python} ${inference_cmd} ${use_gpu_key}=True ${use_trt_key}=${use_trt} ${precision_key}=${precision} ${infer_batch_key}=${bs} ${set_model} ${set_img} ${set_benchmark}"
                    eval "${cmd}" > "${_log}" 2>&1
                    status_check $? "${cmd}" "${status_log}"
                done
            done
        done
    else
        for mkldnn in ${use_mkldnn_list}; do
            for threads in ${cpu_threads_list}; do
                for precision in ${precision_list}; do
                    if [ "${precision}" = "fp16" ] && [ "${mkldnn}" != "True" ]; then
                        continue
                    fi
                    for bs in ${infer_batch_list}; do
                        _log="${LOG_PATH}/python_infer_cpu_usemkldnn_${mkldnn}_threads_${threads}_precision_${precision}_batchsize_${bs}.log"
                        cmd="${python} ${inference_cmd} ${use_gpu_key}=False ${use_mkldnn_key}=${mkldnn} ${cpu_threads_key}=${threads} ${precision_key}=${precision} ${infer_batch_key}=${bs} ${set_model} ${set_img} ${set_benchmark}"
                        eval "${cmd}" > "${_log}" 2>&1
                        status_check $? "${cmd}" "${status_log}"
                    done
                done
            done
        done
    fi
done
exit 0
