# Hub downloads for offline compute nodes (pipeline/download.py): the model and datasets the configuration loads
# from the Hugging Face hub, fetched into HF_HOME (resources/hf) on the machine that runs Snakemake; every job
# then reads them there with HF_HUB_OFFLINE=1 (Snakefile). Absent from the DAG when nothing comes from the hub
# (the tiny experiment). Run it alone on a login node: snakemake --cores 1 download --config scale=paper


localrules:
    download,


rule download:
    output:
        HUB_MANIFEST,
    log:
        f"{OUT}/logs/download.log",
    conda:
        conda_env("data")
    threads: 1
    params:
        code=code_version("download"),
        config=config_file,
        plan=lambda w: json.dumps([dataclasses.asdict(f) for f in HUB_PLAN]),  # a rerun trigger
        hf_home=lambda w, output: output[0].split("/manifests/")[0],
    shell:
        "python -m pipeline download --config {params.config:q} --hf-home {params.hf_home}"
        " --manifest {output} > {log} 2>&1"
