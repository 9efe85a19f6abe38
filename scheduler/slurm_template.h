// The job script template slurm/job.sbatch.in, embedded at build time.
#pragma once
#include <string>
namespace orch::scheduler {
const std::string& slurm_job_template();
}
