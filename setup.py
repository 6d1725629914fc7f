from configparser import ConfigParser
import setuptools, shlex

# nbdev's template setup.py, without `pkg_resources` (no longer shipped by setuptools).
config = ConfigParser(delimiters=['='])
config.read('settings.ini', encoding='utf-8')
cfg = config['DEFAULT']

cfg_keys = 'version description keywords author author_email'.split()
expected = cfg_keys + "lib_name user branch license status min_python audience language".split()
for o in expected: assert o in cfg, "missing expected setting: {}".format(o)
setup_cfg = {o: cfg[o] for o in cfg_keys}

licenses = {
    'apache2': ('Apache Software License 2.0', 'OSI Approved :: Apache Software License'),
}
statuses = ['1 - Planning', '2 - Pre-Alpha', '3 - Alpha', '4 - Beta', '5 - Production/Stable',
            '6 - Mature', '7 - Inactive']
py_versions = '3.10 3.11 3.12 3.13'.split()

requirements = shlex.split(cfg.get('requirements', ''))
dev_requirements = shlex.split(cfg.get('dev_requirements', ''))
lic = licenses.get(cfg['license'].lower(), (cfg['license'], None))
min_python = cfg['min_python']
console_scripts = cfg.get('console_scripts', '').split()

extras = {
    'dev': dev_requirements,
    # GPU (CUDA) machines: Unsloth's fast path and bitsandbytes 4-bit/8-bit optimisers.
    # Unsloth pins trl<=1.15 and transformers<=5.17 itself.
    'unsloth': ['unsloth>=2026.10.9', 'bitsandbytes>=0.45.5'],
    # bitsandbytes alone, for the `peft` backend's QLoRA on CUDA without Unsloth.
    'gpu': ['bitsandbytes>=0.45.5'],
    'notebook': ['ipywidgets>=8', 'jupyterlab>=4', 'matplotlib>=3.8'],
    # Experiment trackers for `report_to` / `--report-to` (TensorBoard works offline; W&B runs offline by default).
    'tensorboard': ['tensorboard>=2.14'],
    'wandb': ['wandb>=0.19'],
    'trackio': ['trackio>=0.5'],
    # Docs without Quarto (tools/build_docs.py) and the browser tests (tests/browser/test_docs_site.py;
    # tests/browser/test_lab_widget.py: the walkthrough's training widget in JupyterLab), with Debian's chromium:
    # `apt-get install -y chromium`; never `playwright install`.
    'docs': ['nbconvert>=7.16,<8', 'playwright>=1.60', 'ipywidgets>=8', 'matplotlib>=3.8', 'jupyterlab>=4'],
}

setuptools.setup(
    name=cfg['lib_name'],
    license=lic[0],
    classifiers=[
        'Development Status :: ' + statuses[int(cfg['status'])],
        'Intended Audience :: ' + cfg['audience'].title(),
        'Natural Language :: ' + cfg['language'].title(),
    ] + ['Programming Language :: Python :: ' + o for o in py_versions[py_versions.index(min_python):]]
      + (['License :: ' + lic[1]] if lic[1] else []),
    url=cfg['git_url'],
    packages=setuptools.find_packages(include=['forge_nb', 'forge_nb.*']),
    include_package_data=True,
    package_data={'forge_nb': ['assets/*.jsonl', 'assets/*.jinja']},
    install_requires=requirements,
    extras_require=extras,
    dependency_links=cfg.get('dep_links', '').split(),
    python_requires='>=' + cfg['min_python'],
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    zip_safe=False,
    entry_points={
        'console_scripts': console_scripts,
        'nbdev': [f'{cfg.get("lib_path")}={cfg.get("lib_path")}._modidx:d'],
    },
    **setup_cfg)
